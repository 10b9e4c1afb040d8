"""The directory ``auditel run`` puts first on the child's PYTHONPATH (see ``sitecustomize.py``)."""
