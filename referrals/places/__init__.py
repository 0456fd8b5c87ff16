"""Postcodes to places: coordinates and districts from the ONS postcode directory."""
