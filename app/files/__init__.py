"""`/files`: the signed-in user's file library and upload widget (hypermedia, not the JSON API).

Its blueprint and views are in app.files.routes."""
