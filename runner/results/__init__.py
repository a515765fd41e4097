"""What a run leaves behind: ``run.json`` (``manifest``), item folders and atomic files
(``outputs``), tables, the HTML report, the CI files (JUnit, step summary,
annotations) and the live progress display."""
