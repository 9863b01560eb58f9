"""The Streamlit workbench UI (floor 3): pages in `app_pages/`, figures in `figures.py`, served in-process."""
