//! (in progress) Session stores.
