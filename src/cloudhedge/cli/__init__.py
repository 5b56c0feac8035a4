"""The command line: the only place that prints. Reports (HTML, charts) live here too."""
