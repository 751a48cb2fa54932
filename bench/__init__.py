"""`make bench`: Hearth's full stack against a bare Flask app under the same load (see README.md)."""
