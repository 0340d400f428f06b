"""Human-readable outputs: Markdown tables and plots written beside the JSON results."""
