"""Small leaf helpers shared by every layer (atomic writes, safe paths)."""
