"""ctloop: level-2 continuous training for flight-delay prediction."""
