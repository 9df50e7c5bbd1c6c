"""The small UI-helper package: the only code besides app.py and views/ that imports streamlit."""
