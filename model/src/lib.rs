//! Action-conditioned world models for Dreamyard (see ARCHITECTURE.md).
