"""takedown's services: intake, dispatcher, outcomes and the platform sandbox."""
