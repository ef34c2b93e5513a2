//! (in progress) A stand-in for Microsoft Entra ID, for tests and `portcullis demo`.
