"""User uploads: presigned direct-to-storage uploads, confirmation, processing, the file library."""
