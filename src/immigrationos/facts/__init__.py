"""Facts about a person's immigration and criminal history, each derived from source records."""
