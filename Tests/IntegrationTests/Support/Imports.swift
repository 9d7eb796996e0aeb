// Every integration test uses the shared test support (child processes, temp directories).
@_exported import NpfsTestSupport
