"""Files the UI ships: the app icon (SVG and PNG sizes) and the Linux desktop entry."""
