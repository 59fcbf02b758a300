"""Mail: the use cases behind the mail routes, on top of the Graph client layer."""
