"""The web console of `polysync server`: Jinja2 pages plus a little JavaScript for live data."""
