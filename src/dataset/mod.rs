//! Reading and validating a dataset folder into Arrow record batches.
