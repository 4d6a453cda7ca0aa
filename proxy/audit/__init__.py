"""`floodgate audit`: check an existing project's lockfile with the detector and the policy."""
