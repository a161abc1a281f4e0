"""The text reports that both the CLI and the workbench show, written once for both: the data
check (data_report), the evaluation table (eval_table) and the lines of a job's events and the
runs' summaries (event_lines). Plain text and plain data in, lines out; no terminal, no Textual."""
