"""The six UN languages: which there are (here, cheap to import), their catalogs and Babel locales
(`languages`), and dates, times and items worded in each (`wording`)."""

LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
