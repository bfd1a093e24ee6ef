"""CI scenarios on the simulated SAN: load, build the world, run the orchestrator's jobs, check, report.

load     the scenario files (pydantic): simulator scenarios (`sim run`) and CI scenarios (`scenario run`)
volumes  the scenario's volumes: synthetic layouts or real images
jobs     a scenario's steps made into the orchestrator's backup and restore jobs
run      one CI scenario run on the simulated SAN
expect   expectations checked, JUnit XML
"""
