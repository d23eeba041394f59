"""shallowflow: gradient flow of mean-field shallow ReLU networks (see SPEC.md)."""
