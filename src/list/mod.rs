//! list: placeholder until its issue lands.
