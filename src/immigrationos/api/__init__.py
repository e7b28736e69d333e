"""The REST API (FastAPI) and the pages served beside it."""
