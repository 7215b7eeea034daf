"""Everything on the host between the files on disk and a batch on the device."""
