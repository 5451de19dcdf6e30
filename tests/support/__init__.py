"""Helpers the tests share. No tests here: test modules import these, never one another."""
