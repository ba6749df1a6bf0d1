"""Where report files are stored: the local file system or an object store."""
