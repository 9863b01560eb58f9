"""One module per scripted agent. Each defines SERVICE, START (UTC) and `run(session)`; the model's words
are written here, everything the tools do is real (inside the sandbox)."""
