"""Everything that knows pytest-xdist or execnet: hooks, scheduler, link, patches."""
