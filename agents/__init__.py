"""Everything Faust and everything that touches the outside world."""
