"""Behavioural checks of the trained model: negations, intensifiers, emoticons, invariances."""
