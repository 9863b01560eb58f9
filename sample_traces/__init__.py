"""Sample incidents: scripted agents on the workbench SDK, their committed traces, and their catalog."""
