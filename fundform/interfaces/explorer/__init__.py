"""`fundform serve`: the live explorer. engine.py answers a scenario (the sweep's code path with one scenario, so
every figure is the engine's own); server.py is the web application around it (Starlette, uvicorn, the request
guards); page.py assembles the one page from the files in assets/ (HTML, CSS and the script, shipped with the
package)."""
