"""Debian knowledge both sides need: the build matrix from ``debian/config``, changelogs,
``.dsc`` files, dpkg's arch table, the packaging repository and downloads."""
