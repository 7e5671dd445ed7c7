"""The Streamlit app's widgets and page sections (``pages/*.py`` are short scripts over these).

The only part of calib that imports streamlit; pure logic lives in the core.
"""
