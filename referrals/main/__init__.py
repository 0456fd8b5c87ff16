"""Home pages, navigation, health check and the site's static pages."""
