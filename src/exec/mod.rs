//! exec: placeholder until its issue lands.
