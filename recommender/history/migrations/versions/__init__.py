"""One revision per schema version: `schema<N>` brings a store to version N."""
