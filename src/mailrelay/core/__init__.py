"""The pure core: models, errors, the clock, tokens and the small pieces every layer uses."""
