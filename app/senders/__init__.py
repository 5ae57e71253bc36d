"""Sender numbers and the portfolio's messaging limit they share."""
