"""The `curate` command line (cli/main.py assembles it). Nothing in the project imports cli/."""
