"""Demo venue: produces market traffic through the producer API, like any platform."""
