"""Import customers, payment methods and subscriptions from a CSV file.

``reader`` checks the file and splits it into records, ``mapping`` turns a
JSON mapping (or the default layout) into field rules, ``rows`` validates
every record completely, and ``service`` writes the valid rows through each
module's services.
"""
