"""One module per command. Each takes one request object, built by ``runner.cli`` from
the command line (its fields are the options, by the same names), and returns the
exit code. The commands print; everything below them only returns values."""
