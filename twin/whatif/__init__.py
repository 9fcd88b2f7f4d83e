"""What-if planning: scenarios overlaid on the twin, and the analyses that compare them.

Pure: a scenario is data, the analyses take the live twin's frames and
graphs plus a scenario and return results; nothing here writes to the twin.
"""
