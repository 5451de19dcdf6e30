"""The six UN languages (`tracker.text.LANGUAGES`): their catalogs and Babel locales (`languages`),
and dates, times and items worded in each (`wording`)."""
