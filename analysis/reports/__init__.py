"""Printable reports (PDF via reportlab; charts drawn with matplotlib)."""
