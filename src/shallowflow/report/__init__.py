"""Reports: verdict text and the one writer of Markdown, HTML and JSON reports."""
