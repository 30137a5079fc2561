"""kbo: build every Debian architecture of the kernel packaging, so none falls behind.

Layout:
  - planning is pure: ``matrix``, ``debian_config``;
  - I/O sits at the edges, one small module each: ``sources`` (directory, .dsc,
    git), ``gitrepo``, ``dpkg_arch``;
  - ``cli`` turns arguments into calls and errors into one line and an exit status.
"""
