"""The survivable call server: registrar, B2BUA call control, security."""
