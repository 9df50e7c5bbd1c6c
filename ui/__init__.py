"""The small UI-helper package: the only code besides app.py and pages/ that imports streamlit."""
