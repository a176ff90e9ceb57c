"""Panes of the session screen: values come in through methods, messages go out."""
